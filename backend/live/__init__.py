"""Live questions (`tamscope serve --live`): a job API over one worker process that runs the
precompute stages on an uploaded image (or a served painting) and a prompt, streaming its
progress as server-sent events; finished jobs are paintings of the `live` dataset.

    settings   the limits and models, from the command line
    uploads    reading and checking an upload before anything else happens to it
    ratelimit  how often one client may ask
    jobs       the queue, the worker process (precompute.liveworker), time limits, cancellation
    served     finished paintings join the served live dataset while the server runs
    routes     the HTTP API (docs/api.md, "Live questions")
This package never imports torch: only the worker process does.
"""
