"""Spend over a period of cost records (`costmesh.cost_records`): the sums by layer and over
time (`summary`), the groups by tenant, API key and model (`breakdown`), and the times a period
is given in (`times`). One copy for `costmesh report` (tooling) and the gateway's dashboard API."""
