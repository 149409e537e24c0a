#!/usr/bin/env python3
"""Start and monitor MCP servers with retry and parallel startup."""

import asyncio
from trio_primitives import (
    ParallelPrimitive,
    RetryPrimitive,
    SequentialPrimitive,
    TimeoutPrimitive,
    LambdaPrimitive,
    WorkflowContext,
)

async def start_server(server_data: dict, ctx: WorkflowContext) -> dict:
    """Start a single MCP server."""
    name = server_data["name"]
    # Start server logic
    return {"server": name, "status": "running"}

async def health_check(server_data: dict, ctx: WorkflowContext) -> dict:
    """Check server health."""
    # Health check logic
    return {**server_data, "healthy": True}

def build_startup_workflow(servers: list[str]):
    """Build server startup workflow with health checks."""
    # Create startup primitive for each server
    server_starts = []
    for server_name in servers:
        inject_name = LambdaPrimitive(
            lambda d, c, name=server_name: {"name": name}
        )
        start = RetryPrimitive(
            TimeoutPrimitive(
                LambdaPrimitive(start_server),
                timeout_seconds=30.0
            ),
            max_attempts=3,
            backoff_factor=2.0
        )
        health = TimeoutPrimitive(
            LambdaPrimitive(health_check),
            timeout_seconds=10.0
        )
        server_starts.append(inject_name >> start >> health)

    # Start all servers in parallel, then validate
    return SequentialPrimitive([
        ParallelPrimitive(server_starts),
        LambdaPrimitive(lambda d, c: {"all_servers": d, "status": "ready"})
    ])

async def main():
    servers = ["basic", "agent_tool", "knowledge_resource"]
    workflow = build_startup_workflow(servers)
    context = WorkflowContext(workflow_id="mcp-startup")

    result = await workflow.execute({}, context)
    print(f"All servers started: {result['status']}")

if __name__ == "__main__":
    asyncio.run(main())
