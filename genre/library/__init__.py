"""A music library, organised: genre tags written safely into the files (``tags``)."""
