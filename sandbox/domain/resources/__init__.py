"""Stripe resources: each module has the domain handlers of one kind of object (served
at `/v1/` through `sandbox.http.v1_routes`)."""
