"""The MCP client: servers from THREADBOT_MCP_CONFIG, their tools offered to the model, calls routed to them."""
from tools.mcp.manager import MCPManager, MCPTool, ServerStatus
from tools.mcp.servers_file import ServerConfig, load_servers_file, parse_servers

__all__ = ["MCPManager", "MCPTool", "ServerConfig", "ServerStatus", "load_servers_file", "parse_servers"]
