"""onramp's shared package: settings, logging, Postgres and migrations, the command line.

Both processes (API and worker) import it; it never imports `api` or `worker`.
"""
