"""Bronze: the warehouse table ``bronze.delitos``, loaded per month from the lake, idempotently."""
