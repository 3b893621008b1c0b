"""Target hosts: those listed in the YAML file named by HEARTHDB_INVENTORY, else the running lab hosts.

# hosts.yml
hosts:
  - host: db1.example.org   # address or DNS name (required)
    name: db1               # name shown by pyinfra (default: host)
    user: admin             # SSH user (default root; other users get sudo)
    port: 22                # SSH port (default 22)
    key: ~/.ssh/id_ed25519  # private key (default: ssh agent / ~/.ssh)
"""

from operations.inventory import inventory_hosts

hearthdb_hosts = inventory_hosts()
