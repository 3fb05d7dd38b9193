"""What API Gateway answers itself, without calling the app, in the API's
{"error", "message"} shape: a request for no route (its default is a 403
{"message": "Missing Authentication Token"}) is a 404 that says what to check.

Gateway responses belong to the REST API's OpenAPI document: `chalice
deploy` replaces the whole API with the document it generates on every
deploy (PutRestApi, mode overwrite), which would drop any set beside it. So
they are added to that document: when `chalice deploy` or `chalice package`
loads the app, its generator also writes them. Chalice has no setting for
this; on Lambda (no chalice.deploy there) nothing is done."""

import json
import sys

from chalicelib.api.replies import NO_ROUTE

GATEWAY_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": {
        "statusCode": "404",  # a string, as the extension has it
        "responseTemplates": {"application/json": json.dumps({"error": NO_ROUTE[0], "message": NO_ROUTE[1]})},
    },
}
EXTENSION = "x-amazon-apigateway-gateway-responses"


def add_to_deployed_api() -> None:
    """Have chalice's OpenAPI generator (deploy and package alike) write GATEWAY_RESPONSES."""
    swagger = sys.modules.get("chalice.deploy.swagger")
    if swagger is None or getattr(swagger.SwaggerGenerator.generate_swagger, "adds_gateway_responses", False):
        return
    generate = swagger.SwaggerGenerator.generate_swagger

    def generate_swagger(self, app, rest_api=None):
        document = generate(self, app, rest_api)
        document[EXTENSION] = GATEWAY_RESPONSES
        return document

    generate_swagger.adds_gateway_responses = True
    swagger.SwaggerGenerator.generate_swagger = generate_swagger
