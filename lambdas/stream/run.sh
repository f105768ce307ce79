#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): serve the
# stream front door on the port the adapter forwards Function URL requests to. uvloop and
# httptools, no proxy-headers middleware and no server header: the door's per-request CPU
# is billed Lambda time (bench/ runs the door with these same flags). Started through
# services/web/serve.py, so that uvicorn's own errors have the OpenAI envelope.
export PYTHONPATH=/var/task:${PYTHONPATH:-}
exec python3 -m services.web.serve lambdas.stream.app:create_app --factory \
    --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" --no-access-log \
    --loop uvloop --http httptools --no-proxy-headers --no-server-header
