"""Connecting to a Redis Cluster from ``REDIS_URL``: a node's URL, or several nodes' URLs
separated by commas, so the store still finds the cluster when one of them is down. The first
URL's credentials and options serve every node."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["cluster_client", "node_url"]


def _urls(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


def cluster_client(url: str, *, asyncio: bool = False, **options: Any) -> Any:
    """redis-py's RedisCluster (``redis.asyncio``'s with ``asyncio``) on the nodes ``url``
    names; it learns the rest of the cluster from the first that answers."""
    if asyncio:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
    else:
        from redis.cluster import ClusterNode, RedisCluster  # type: ignore[assignment]

    first, *others = _urls(url)
    nodes = [urlsplit(other) for other in others]
    startup = [ClusterNode(node.hostname, node.port or 6379) for node in nodes]
    return RedisCluster.from_url(first, startup_nodes=startup, **options)


def node_url(url: str, name: str) -> str:
    """The URL of cluster node ``name`` ("host:port"), with the first URL's credentials."""
    parts = urlsplit(_urls(url)[0])
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{name}" if auth else name
    return urlunsplit((parts.scheme, netloc, "/0", parts.query, ""))
