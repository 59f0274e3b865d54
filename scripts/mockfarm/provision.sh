#!/usr/bin/env bash
# Provision the running mock farm: ansible-playbook -i inventories/mockfarm site.yml, with the
# SSH settings up.sh wrote and the mock farm's secrets (generated once into .mockfarm/secrets.env, which
# is gitignored) in the environment.  Extra arguments go to ansible-playbook.
source "$(dirname "$0")/env.sh"
mf_secrets
cd "$MF_ROOT"
export ANSIBLE_CONFIG=$MF_ROOT/ansible/ansible.cfg PATH=$MF_ROOT/.venv/bin:$PATH MOCKFARM_DIR=$MF_DIR
exec ansible-playbook -i inventories/mockfarm site.yml "$@"
