#!/usr/bin/env bash
# Provision the running mock farm: ansible-playbook -i inventories/mockfarm site.yml, with the
# SSH settings up.sh wrote and the mock farm's secrets (generated once into .mockfarm/secrets.env, which
# is gitignored) in the environment.  Extra arguments go to ansible-playbook.
source "$(dirname "$0")/env.sh"
secrets=$MF_DIR/secrets.env
# One random value per secret, made once and kept (the database and the page's shift login).
umask 077
touch "$secrets"
for key in FARMTOOLS_DB_PASSWORD FARMTOOLS_MONITOR_PASSWORD; do
  grep -q "^$key=" "$secrets" ||
    printf '%s=%s\n' "$key" "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> "$secrets"
done
set -a
# shellcheck source=/dev/null
source "$secrets"
set +a
cd "$MF_ROOT"
export ANSIBLE_CONFIG=$MF_ROOT/ansible/ansible.cfg PATH=$MF_ROOT/.venv/bin:$PATH MOCKFARM_DIR=$MF_DIR
exec ansible-playbook -i inventories/mockfarm site.yml "$@"
