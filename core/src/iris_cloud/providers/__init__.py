"""The built-in providers, registered in code by :mod:`iris_cloud.plugins`.

* :mod:`iris_cloud.providers.memory` — ``mem://`` queues and containers in this
  process (tests, demos);
* :mod:`iris_cloud.providers.local` — the embedded default: ``local://`` queues
  in SQLite and ``file://`` stores on the filesystem, shared between processes.
"""
