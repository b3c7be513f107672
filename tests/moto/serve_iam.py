"""moto_server enforcing IAM (start it with INITIAL_NO_AUTH_ACTION_COUNT), for the enforced
permissions test (tests/tests/iam_enforced.rs). Same per-table DynamoDB locks as serve.py.

moto 5.1's DynamoHandler.call_action replaces the request body by its parsed JSON before
BaseResponse.call_action authenticates the request, so the SigV4 signature is computed over the
dict and every signed DynamoDB request fails with SignatureDoesNotMatch (SQS, S3 and Secrets
Manager are not affected). Here DynamoDB requests are authenticated and authorised on the raw
body first, then handled as before without a second check. Arguments are moto_server's.
"""

import sys

import serve  # noqa: F401  (the per-table DynamoDB locks)
from moto.dynamodb.responses import DynamoHandler
from moto.server import main
from werkzeug.exceptions import HTTPException

_handled = DynamoHandler.call_action


def _authorised_call_action(self):
    resource = self._determine_resource() if hasattr(self, "_determine_resource") else "*"
    try:
        self._authenticate_and_authorize_normal_action(resource)
    except HTTPException as denied:
        status, headers, body = self._transform_response(
            self.response_headers, (denied.description, {"status": denied.code})
        )
        return status, headers, body
    self._authenticate_and_authorize_normal_action = lambda *args, **kwargs: None
    return _handled(self)


DynamoHandler.call_action = _authorised_call_action

if __name__ == "__main__":
    sys.exit(main())
