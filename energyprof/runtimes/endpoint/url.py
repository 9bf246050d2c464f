"""The endpoint's URL and the API key's environment-variable name: the rules, each problem one sentence.

Imports nothing heavy: the parameter table (energyprof.spec.params) checks with it."""

from __future__ import annotations

import os
import re
from urllib.parse import SplitResult, urlsplit

SCHEMES: tuple[str, ...] = ("http", "https")
EXAMPLE = "http://127.0.0.1:11434/v1"
MAX_URL_CHARS = 2000
API_PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions"}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")


def endpoint_problem(url: object) -> str | None:
    """What is wrong with an API base URL (one sentence), or None when it can be used."""
    if not isinstance(url, str) or not url.strip():
        return f"The endpoint URL is empty; give the server's API base URL, e.g. {EXAMPLE}."
    if len(url) > MAX_URL_CHARS or any(ord(c) < 33 or ord(c) == 127 for c in url.strip()):
        return (f"The endpoint URL is not a URL (too long, or it contains spaces or control characters); give the "
                f"API base URL, e.g. {EXAMPLE}.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return f"The endpoint URL's port is not a number from 1 to 65535; e.g. {EXAMPLE}."
    if parts.scheme.lower() not in SCHEMES:
        shown = f" (not {parts.scheme}://)" if parts.scheme and len(parts.scheme) < 20 else ""
        return f"The endpoint URL must start with http:// or https://{shown}; e.g. {EXAMPLE}."
    if parts.username is not None or parts.password is not None:
        return ("The endpoint URL contains a user name or password; remove it (credentials are never stored) and "
                "put an API key in an environment variable named by --api-key-env.")
    if not parts.hostname:
        return f"The endpoint URL has no host; e.g. {EXAMPLE}."
    if port == 0:
        return f"The endpoint URL's port is not a number from 1 to 65535; e.g. {EXAMPLE}."
    if parts.query or parts.fragment:
        return f"The endpoint URL is an API base without ?query or #fragment, e.g. {EXAMPLE}."
    return None


def api_key_env_problem(name: object) -> str | None:
    """What is wrong with the API key's environment-variable name, or None (also when no key is used).

    The value is never echoed: someone may have pasted the key itself."""
    if name is None:
        return None
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        return ("--api-key-env takes the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), "
                "never the key itself.")
    if name not in os.environ:
        return ("No environment variable of the name given by --api-key-env is set; export it (for dashboard jobs: "
                "in the dashboard's environment) and give its NAME, never the key itself.")
    return None


def parse(url: str) -> SplitResult:
    """The parts of a checked endpoint URL."""
    return urlsplit(url.strip())


def api_url(base: str, api: str) -> str:
    """The URL of the streaming API under the API base (`…/v1` + `/chat/completions`)."""
    return base.strip().rstrip("/") + API_PATHS[api]


def models_url(base: str) -> str:
    return base.strip().rstrip("/") + "/models"


def is_loopback(url: str) -> bool:
    """True when the endpoint is on this machine's loopback interface."""
    host = (parse(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def local_port(url: str) -> int:
    """The TCP port the endpoint listens on (the scheme's default when the URL names none)."""
    parts = parse(url)
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)
