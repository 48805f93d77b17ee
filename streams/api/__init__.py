"""The Pacing REST API every worker serves: decisions and definitions of every target, over HTTP(S).

- :mod:`streams.api.directory` holds every target's newest decision and definition in memory;
- :mod:`streams.api.decision_feed` keeps it current from ``pacing.actiontargets``;
- :mod:`streams.api.models` are the request and response models (the OpenAPI document's source);
- :mod:`streams.api.openapi` builds that document; :mod:`streams.api.problems` the RFC 9457 errors;
- :mod:`streams.api.auth` checks bearer tokens; :mod:`streams.api.definitions` validates and writes
  definitions to ``pacing.targets``; :mod:`streams.api.server` routes requests and serves HTTP(S).
"""
