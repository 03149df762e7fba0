"""The operators' dashboard on the gateway's HTTP port (`/dashboard`) and its JSON API
(`/admin/api/v1/...`, `api.py`), for admin keys only: spend by tenant, key and model from the
cost records, the cache verifier's operating point, API keys, and budgets and limits per tenant
and key. The page is static (HTML, one script, one stylesheet, charts drawn as inline SVG):
nothing is fetched from outside the gateway."""
