-- wrk script for the "post" scenario of bench/run: POST a 16 KiB body to the echo app.
wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
