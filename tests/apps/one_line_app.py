"""The whole application is its one line below: `spew` must show that line in the error log."""

app = lambda environ, start_response: [start_response("200 OK", []) and b"one line\n"]  # noqa: E731
