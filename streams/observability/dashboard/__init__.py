"""The dashboard the worker serves (docs/dashboard.md): pages, their JSON endpoints and the time series behind
them. Plain HTML and JavaScript with Chart.js vendored in `static/`; no build step."""
