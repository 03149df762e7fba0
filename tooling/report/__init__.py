"""Cost records (one per request, kept on disk) and the savings report built from them."""
