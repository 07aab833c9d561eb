#!/bin/sh
# One-shot: wait for the Temporal frontend, create onramp's namespace and register its
# search attributes (the same ones `onramp dev` passes to the dev server; see
# workflows/search_attributes.py). Safe to run again.
set -eu
: "${TEMPORAL_ADDRESS:?}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do
  attempt=$((attempt + 1))
  [ "$attempt" -lt 30 ] || { echo "Temporal did not become healthy"; exit 1; }
  sleep 2
done
temporal operator namespace describe -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS" \
  || temporal operator namespace create -n "$NAMESPACE" --retention 30d --address "$TEMPORAL_ADDRESS"
for name in OnrampUserId OnrampTier OnrampPaymentState OnrampProvisioningState; do
  temporal operator search-attribute create --namespace "$NAMESPACE" \
    --name "$name" --type Keyword --address "$TEMPORAL_ADDRESS" \
    || echo "search attribute $name already registered"
done
echo "namespace $NAMESPACE and search attributes ready"
