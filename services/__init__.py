"""The costmesh services, one process each (`python -m costmesh.services.<name>`)."""
