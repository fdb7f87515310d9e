"""Resources: the outside world (model hub, engines, warehouse, price catalog)."""
