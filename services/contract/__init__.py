"""The API's contract: the OpenAPI document generated from the route table and the models
every group validates with (`openapi`, `schemas`), and what the doors answer with it
(`public`: the JSON and its offline reference page)."""
