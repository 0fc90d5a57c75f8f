"""What lands on disk: the run folder (the only code that builds its paths), atomic files,
escaping for markdown/HTML/CSV, and the status vocabulary of records and runs."""
