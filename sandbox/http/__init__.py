"""The sandbox's HTTP layer: the Starlette app, the `/v1/` pipeline and its route table,
the control API (`/_sandbox/...`) and the hosted pages. It translates requests into calls
on `sandbox.domain` and the domain's errors into Stripe's error JSON."""
