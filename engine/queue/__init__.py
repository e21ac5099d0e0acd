"""The durable queue's runtime: the engine (scheduler loop), executors that start workers, and the worker.

Nothing here imports torch; the worker imports a job kind's code only in its own process.
"""
