"""Usage and cost: one record per provider call, priced from a versioned table.

- `context`: who is calling (`CALLER`), set by the worker after authentication.
- `calls`: what the router hands a recorder for each provider call (the hot path: one
  append to a queue).
- `prices` and `prices.toml`: the dated, versioned price table.
- `writer`: the background writer; `store`: the DynamoDB items (one TransactWriteItems
  per call: the record, the tenant's monthly spend counter, the key's rate window).
- `report`: `GET /v1/usage` and the CLI's report, straight from DynamoDB.
"""
