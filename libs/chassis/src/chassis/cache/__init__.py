"""Byte caches behind one interface: in-process (TTL + LRU) or Redis, chosen by settings."""

from chassis.cache.base import CacheStore
from chassis.cache.lookup import get_or_set
from chassis.cache.memory import MemoryCacheStore
from chassis.cache.redis import RedisCacheStore
from chassis.cache.setup import CacheDep, check_cache, create_cache_store, get_cache, setup_cache

__all__ = [
    "CacheDep",
    "CacheStore",
    "MemoryCacheStore",
    "RedisCacheStore",
    "check_cache",
    "create_cache_store",
    "get_cache",
    "get_or_set",
    "setup_cache",
]
