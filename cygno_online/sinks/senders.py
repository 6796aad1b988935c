"""HTTP senders: one batch of line-protocol lines -> one write request.

A sender knows nothing about retries or the spool: it raises
:class:`SendError` with a classification the sink acts on.

* :class:`V2Sender` - ``/api/v2/write`` through ``influxdb-client`` used
  synchronously (InfluxDB 2.x/3.x, 1.8+ in compatibility mode, VictoriaMetrics
  and other servers speaking the v2 write API). The client's batching mode is
  deliberately not used: it keeps points in memory only.
* :class:`V1Sender` - ``/write?db=&rp=&precision=ns`` for InfluxDB 1.x
  (Debian's 1.6 has no v2 API).
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

#: outcome classes
RETRY = "retry"  # server or network trouble: back off and send the same batch again
REJECT = "reject"  # the batch is bad (400/413/422): split it, quarantine bad lines
AUTH = "auth"  # 401/403: keep spooling, retry slowly, loud error state
CONFIG = "config"  # 404 (no such database/bucket): like auth, an operator must act


class SendError(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.message = message


def classify(status: int) -> str:
    if status in (400, 413, 422):
        return REJECT
    if status in (401, 403):
        return AUTH
    if status == 404:
        return CONFIG
    return RETRY


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _text(body: Any, limit: int = 400) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body).strip().replace("\n", " ")
    return text[:limit]


class V1Sender:
    """InfluxDB 1.x ``/write`` over urllib.

    Why urllib and not influxdb-client's HTTP pool: the client has no v1 write
    call (its 1.x support is the /api/v2/write compatibility endpoint of 1.8+),
    and reaching into its private REST layer would tie us to its internals.
    One request carries ~5000 lines, so a new connection per batch costs
    nothing measurable, and urllib gives direct access to status, body and
    ``Retry-After``, an ``ssl`` context with our CA file, and no extra
    dependency. Credentials go in an Authorization header, never in the URL
    (URLs end up in logs).
    """

    api = "v1"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
        timeout_s: float = 10.0,
        gzip_level: int = 1,
    ) -> None:
        query = {"db": database, "precision": "ns"}
        if retention_policy:
            query["rp"] = retention_policy
        self.endpoint = url.rstrip("/") + "/write?" + urllib.parse.urlencode(query)
        self.headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.timeout_s = timeout_s
        self.gzip_level = gzip_level
        self.context: ssl.SSLContext | None = None
        if url.startswith("https:"):
            self.context = ssl.create_default_context(cafile=ca_file)
            if not verify_tls:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE

    def send(self, body: bytes) -> None:
        data = gzip.compress(body, compresslevel=self.gzip_level)
        req = urllib.request.Request(self.endpoint, data=data, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self.context) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = _text(exc.read())
            except OSError:
                detail = ""
            raise SendError(
                classify(exc.code),
                f"HTTP {exc.code}: {detail or exc.reason}",
                status=exc.code,
                retry_after=parse_retry_after(exc.headers.get("Retry-After")),
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SendError(RETRY, f"connection failed: {reason}") from None

    def close(self) -> None:
        pass


class V2Sender:
    """``/api/v2/write`` through influxdb-client's synchronous WriteApi.

    For InfluxDB 1.8+ compatibility: bucket ``db/rp``, token ``user:password``,
    org ``-``.
    """

    api = "v2"

    def __init__(
        self,
        url: str,
        org: str,
        bucket: str,
        *,
        token: str | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.org = org
        self.bucket = bucket
        self.client = InfluxDBClient(
            url=url,
            # an empty token still sends "Authorization: Token " - servers
            # without auth (VictoriaMetrics, 1.x without auth) accept it
            token=token or "",
            org=org,
            timeout=int(timeout_s * 1000),
            enable_gzip=True,
            verify_ssl=verify_tls,
            ssl_ca_cert=ca_file,
            # our own retry loop honours Retry-After and the spool; urllib3's must not hide errors
            retries=False,
        )
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def send(self, body: bytes) -> None:
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self.write_api.write(
                bucket=self.bucket, org=self.org, record=body, write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            headers = exc.headers or {}
            retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
            raise SendError(
                classify(status) if status else RETRY,
                f"HTTP {status}: {_text(exc.body) or exc.reason}",
                status=status or None,
                retry_after=parse_retry_after(retry_after),
            ) from None
        except InfluxDBError as exc:
            raise SendError(RETRY, f"write failed: {exc}") from None
        except (OSError, ValueError) as exc:
            raise SendError(RETRY, f"connection failed: {exc}") from None
        except Exception as exc:  # urllib3 raises its own hierarchy (MaxRetryError...)
            raise SendError(RETRY, f"connection failed: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        try:
            self.write_api.close()
        finally:
            self.client.close()
