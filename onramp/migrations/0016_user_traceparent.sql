-- The W3C `traceparent` of the user's signup (a trace id and a span id, nothing else):
-- later operations for the user (the checkout and what follows it) continue that trace,
-- so one journey is one trace. NULL when tracing was off at signup.
ALTER TABLE users ADD COLUMN traceparent text
    CHECK (traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
