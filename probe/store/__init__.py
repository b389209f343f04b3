"""The observation store: what probe saw, in SQLite or PostgreSQL, kept across runs.

Typical use (``open_store`` from :mod:`probe.store.engine`; synchronous; async code wraps
calls in ``anyio.to_thread.run_sync``)::

    store = open_store(url)                      # migrates an empty database to head
    ids = store.upsert_directory(directory)      # endpoint ids by Target.key
    with store.run_lock("nightly"):
        run_id = store.start_run(RunKind.NIGHTLY, {"concurrency": 8})
        with store.writer(run_id) as writer:
            writer.add_exchanges(endpoint_id, report.exchanges)
            writer.add_check_results(endpoint_id, report.results)
            writer.mark_target(endpoint_id, TargetStatus.DONE)
        store.finish_run(run_id, RunStatus.COMPLETED)
"""
