"""An honest local API Gateway (REST API, Lambda proxy integration, payload v1) in front of the functions.

- ``routing``: which resource and method a request matches, and the proxy event API Gateway builds;
- ``answers``: the function's response mapped to HTTP, and API Gateway's own answers;
- ``pool`` and ``environments``: execution environments (AWS's Runtime Interface Emulator running each
  function's handler through awslambdaric), started on demand up to a maximum concurrency;
- ``in_process``: the functions in this process, for unit tests and the fixture invoker;
- ``server``: the HTTP server;
- ``serve``: ``python -m player_sessions_local.gateway`` (`make serve`).
"""

from player_sessions_local.gateway.server import LocalApiGateway, create_server

__all__ = ["LocalApiGateway", "create_server"]
