"""Every name and number of the deployed service, in one place (plain values: the layer build reads them too,
without loading the CDK).

Facts the service itself owns (keyspace, retention, tables, routes) are read from the shared package, never
restated here: the CDK app and the local stack cannot drift apart.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from player_sessions.domain.country_starts.schedule import SCHEDULE_PERIOD
from player_sessions.routes import COUNTRY_STARTS, INGEST_EVENTS, PLAYER_DATA, LambdaFunction
from player_sessions.settings import Settings

# --- Paths -------------------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
SHARED_PACKAGE_DIR = REPO_ROOT / "layers" / "player_sessions"
LAYER_BUILD_DIR = REPO_ROOT / ".build" / "layer"
"""The dependency layer's asset: ``python/`` inside it is what Lambda puts on sys.path (/opt/python)."""
OPENAPI_DOCUMENT = REPO_ROOT / "docs" / "openapi.json"
CDK_JSON = REPO_ROOT / "cdk.json"
CDK_OUT_DIR = REPO_ROOT / "cdk.out"

# --- The stack ---------------------------------------------------------------------------------------------
STACK_NAME = "PlayerSessions"
STACK_DESCRIPTION = (
    "Player session service: API Gateway, three Lambda functions and a scheduled rollup builder, "
    "Amazon Keyspaces, ElastiCache"
)
SERVICE_NAME = "player-sessions"
"""Powertools' service name (POWERTOOLS_SERVICE_NAME) and the prefix of resource names."""
METRICS_NAMESPACE = "PlayerSessions"
"""Powertools' EMF namespace (POWERTOOLS_METRICS_NAMESPACE) of the service's own metrics."""
ALARM_EMAIL_CONTEXT_KEY = "alarmEmail"
"""Optional context value: an address subscribed to the alarm topic (``cdk deploy -c alarmEmail=...``)."""

# --- Settings the service reads; their defaults are the deployed values -------------------------------------
_DEFAULTS = Settings.model_fields
KEYSPACE: str = _DEFAULTS["keyspace"].default
RETENTION_DAYS: int = _DEFAULTS["retention_days"].default
RETENTION_SECONDS = RETENTION_DAYS * 86_400
ROLLUP_PARTS: int = _DEFAULTS["rollup_parts"].default
"""Builders folding the arrival log in parallel: the schedule invokes one per part."""
ENVIRONMENT_PREFIX = "PLAYER_SESSIONS_"

# --- Lambda ------------------------------------------------------------------------------------------------
LAMBDA_PYTHON_VERSION = "3.14"
"""The runtime's Python; the dependency layer is built for exactly this version (cp314 wheels)."""
LAYER_PLATFORM = "aarch64-manylinux2014"
"""Wheel platform of the layer for the arm64 (aarch64) functions: manylinux2014 (glibc 2.17) wheels run on
Amazon Linux 2023, which the Python 3.12+ runtimes use."""
LAMBDA_MEMORY_MB = 1024
"""Memory buys CPU: at 1 GB the TLS handshake and SigV4 signing of a restore take a fraction of a second."""
LAMBDA_TIMEOUT_SECONDS = 10
"""Well under API Gateway's 29 s: a request that has not finished by then has failed anyway."""
PLAYER_DATA_TIMEOUT_SECONDS = 27
"""An erasure works until 3 s before this (domain.privacy), then answers with its receipt in progress: just under
API Gateway's 29 s integration timeout, so the answer always reaches the caller."""
AUTHORIZER_MEMORY_MB = 512
"""The authorizer checks one RSA signature and fetches the login's keys every few minutes: half the memory,
still enough CPU for a cold start of a second or less."""
AUTHORIZER_TIMEOUT_SECONDS = 5
"""The login's keys come within its fetch timeout (player_sessions.player_tokens) or the token is refused."""
LAMBDA_ALIAS = "live"
"""The alias API Gateway invokes: SnapStart only applies to published versions."""
ROLLUP_BUILDER_SCHEDULE_MINUTES = SCHEDULE_PERIOD // timedelta(minutes=1)
"""EventBridge's shortest rate; each invocation folds until just before the next is due (functions/rollup_builder)."""
ROLLUP_BUILDER_TIMEOUT_SECONDS = 70
"""One invocation folds for 58.5 s at most (domain.country_starts.schedule), then compacts and returns; the
rest is margin for its last fold."""
ROLLUP_BUILDER_CONCURRENCY = ROLLUP_PARTS
"""One builder per part at a time (a second one of a part would be safe, and useless)."""
ROLLUP_LAG_ALARM_SECONDS = 30
"""Readers count the unfolded tail themselves: a builder this far behind makes every count read more."""
LOG_RETENTION = "ONE_YEAR"
"""How long function, access and flow logs are kept (a member of aws_logs.RetentionDays): as long as the
service keeps its data (RETENTION_DAYS), and the year Control Tower asks of log groups (CT.CLOUDWATCH.PR.2)."""

# --- Data: which function may read (Select) and write (Modify) which table: player_sessions.access, derived
# from the statements each function sends (never restated here).

CURSOR_SECRET_READERS: tuple[LambdaFunction, ...] = (COUNTRY_STARTS,)
"""Only the country listing signs and checks page cursors."""
CURSOR_SECRET_LENGTH = 64
"""Characters of a generated HMAC key (the cursor key, the player hash key)."""
PLAYER_HASH_SECRET_READERS: tuple[LambdaFunction, ...] = (INGEST_EVENTS, PLAYER_DATA)
"""Ingest hashes each event's player (their index, their erasure record); the privacy routes do."""

# --- Network and cache -------------------------------------------------------------------------------------
VPC_MAX_AZS = 2
"""Two zones: an environment-agnostic stack can name no more, and both ElastiCache and Lambda want two."""
VPC_SUBNET_CIDR_MASK = 22
"""1,022 addresses per zone: Lambda's Hyperplane ENIs, the endpoints and the cache fit with room to grow."""
CACHE_NAME = SERVICE_NAME
CACHE_ENGINE = "valkey"
CACHE_MAJOR_VERSION = "8"
CACHE_PORT = 6379
CACHE_MAX_DATA_STORAGE_GB = 5
CACHE_MAX_ECPU_PER_SECOND = 100_000
"""Ceilings on what the serverless cache may scale to (and bill); this service's read cache fits within."""

# --- API ---------------------------------------------------------------------------------------------------
API_NAME = SERVICE_NAME
API_STAGE = "v1"
USAGE_PLAN_RATE_LIMIT = 500
"""Steady requests per second for one key (each game title's, the studio's): 5,000 events/s at 10 events a
batch."""
USAGE_PLAN_BURST_LIMIT = 1000
USAGE_PLAN_DAILY_QUOTA = 20_000_000
AUTHORIZER_FAILED_MESSAGE = "Internal server error"
"""API Gateway's answer when the player token authorizer fails or returns what it cannot read (its own message is
null there; the service's errors always carry one)."""
WAF_WINDOW_SECONDS = 300
WAF_PLAYER_TOKEN_LIMIT = 600
"""Requests one player token may make in WAF_WINDOW_SECONDS: a client flushing a batch every second stays
under it; a script replaying one player's token is blocked within the window."""
WAF_ADDRESS_LIMIT = 100_000
"""Requests from one address in WAF_WINDOW_SECONDS, whatever they carry: WAF cannot read a SigV4 signer's
identity, and each made-up player token would be a new key of the per-token limit, so this stops a flood from
one address. It sits above a studio's servers behind one NAT and a carrier NAT's players (333 requests/s)."""

# --- Monitoring --------------------------------------------------------------------------------------------
LATENCY_PERCENTILES = ("p50", "p90", "p99")
LATENCY_ALARM_STATISTIC = "p90"
LATENCY_ALARM_THRESHOLD_MS = 500
"""The mission's bound: p90 under 500 ms per API."""
ALARM_PERIOD_MINUTES = 1
ALARM_EVALUATION_PERIODS = 5
ALARM_DATAPOINTS_TO_ALARM = 3
"""Three bad minutes out of five: a single slow cold start does not page anyone."""
ERROR_ALARM_THRESHOLD = 5
"""Errors (Lambda errors, API 5xx) per minute that count as a rise rather than noise."""
DASHBOARD_NAME = SERVICE_NAME
