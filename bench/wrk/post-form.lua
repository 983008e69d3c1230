-- wrk script: POST the form body in BODY, without authentication (the tutorial's vote)
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
