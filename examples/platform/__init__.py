"""An example platform that runs onramp: it receives onramp's signed events
(`receiver.py`) and provisions its own tenants through the provisioning hook
(`worker.py`). Written as a platform team would write it: it imports nothing of onramp's,
only `fastapi`, `uvicorn`, `temporalio`, `standardwebhooks` and the standard library.
"""
