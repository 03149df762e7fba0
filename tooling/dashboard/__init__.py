"""`costmesh dashboard`: a live view of spend and savings for operators, over a small JSON API
(`app.py` lists it), behind an admin token (`admin_token.py`). The page is static (HTML, one
script, one stylesheet, charts drawn as inline SVG): nothing is fetched from outside."""
