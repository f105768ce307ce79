#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): serve the
# stream front door on the port the adapter forwards Function URL requests to.
export PYTHONPATH=/var/task:${PYTHONPATH:-}
# (uvicorn through services/web/serve.py, so that its own errors have the OpenAI envelope.)
exec python3 -m services.web.serve lambdas.stream.app:create_app --factory \
    --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" --no-access-log
