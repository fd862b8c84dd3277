"""``kubectl modeldeploy``: the plugin that shows and steers a ModelDeployment.

May import only ``api``: it talks to the API server with its own client.
"""
