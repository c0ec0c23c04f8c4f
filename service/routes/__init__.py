"""The HTTP routes, one router a concern; `app.create_app` composes them (the /jobs router is `jobs.router`).

inference: POST /deblur · health: /healthz, /readyz, /metrics · model: GET /model · admin: POST /admin/reload
(only with DEBLUR_ADMIN_TOKEN) · page: the browser page at /. What a route needs from the app comes from `deps`.
"""
