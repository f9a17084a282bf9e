"""Flow export wire formats (cflowd/NetFlow v5, v9, IPFIX) and their bookkeeping."""
