"""The node's HTTP front end: one ASGI application (FastAPI) served by uvicorn on the broker's
own event loop. It serves `/metrics`, the health checks and the admin REST API under `/api/v1`
with its OpenAPI spec at `/openapi.json`; later services (schema registry, connect, console)
add their routers to the same application."""
