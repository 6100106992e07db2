"""Testing support: the provider contract suite and the pytest plugin.

* :class:`BrokerContract` / :class:`StoreContract` — conformance tests a
  provider's test module subclasses, supplying a ``broker_env`` /
  ``store_env`` fixture that implements :class:`BrokerContractEnv` /
  :class:`StoreContractEnv` (see :mod:`iris_cloud.testing.contract` and
  docs/contract-suite.md).
* The same suite on async ports: :class:`BlockingBrokerEnv` /
  :class:`BlockingStoreEnv` wrap an :class:`AsyncBrokerEnv` /
  :class:`AsyncStoreEnv` in blocking facades run on a :class:`LoopThread`
  (fixture ``loop_thread``); :class:`ThreadedBrokerEnv` /
  :class:`ThreadedStoreEnv` make one from a sync env for thread-run async
  classes (see :mod:`iris_cloud.testing.blocking`).
* :func:`require_server` — fail (CI) or skip (elsewhere) when a test server
  cannot start; :func:`stop_process` — stop one that was started.
* Ready-made environments for the built-in providers, e.g. to run the suite
  or the workflow against them: :class:`MemoryBrokerEnv`, :class:`MemoryStoreEnv`,
  :class:`LocalBrokerEnv`, :class:`LocalStoreEnv`.
* :class:`FaultProxy` — a TCP proxy that passes, stalls, resets or
  black-holes the link to a test server, for fault-injection tests.
* :class:`Watcher` — ``store.watch`` in a thread, entered once it has listed
  what exists, for tests of notification-fed watches.
"""

from __future__ import annotations

from iris_cloud.testing.blocking import (
    AsyncBrokerEnv,
    AsyncStoreEnv,
    BlockingBrokerEnv,
    BlockingStoreEnv,
    LoopThread,
    ThreadedBrokerEnv,
    ThreadedStoreEnv,
)
from iris_cloud.testing.contract import (
    BrokerContract,
    BrokerContractEnv,
    StoreContract,
    StoreContractEnv,
    large_object_mb,
)
from iris_cloud.testing.envs import (
    LocalBrokerEnv,
    LocalStoreEnv,
    MemoryBrokerEnv,
    MemoryStoreEnv,
    builtin_profile_dict,
)
from iris_cloud.testing.faultproxy import FaultProxy, cut_and_heal
from iris_cloud.testing.plugin import emulators_required, require_server
from iris_cloud.testing.processes import stop_process
from iris_cloud.testing.watcher import Watcher

__all__ = [
    "AsyncBrokerEnv",
    "AsyncStoreEnv",
    "BlockingBrokerEnv",
    "BlockingStoreEnv",
    "BrokerContract",
    "BrokerContractEnv",
    "FaultProxy",
    "LocalBrokerEnv",
    "LocalStoreEnv",
    "LoopThread",
    "MemoryBrokerEnv",
    "MemoryStoreEnv",
    "StoreContract",
    "StoreContractEnv",
    "ThreadedBrokerEnv",
    "ThreadedStoreEnv",
    "Watcher",
    "builtin_profile_dict",
    "cut_and_heal",
    "emulators_required",
    "large_object_mb",
    "require_server",
    "stop_process",
]
