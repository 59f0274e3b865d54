"""Deployment helpers: the farm configuration rendered from the one template in ``templates/``.

The Ansible roles (``roles/``), the mock farm (``scripts/mockfarm/``) and the Vagrantfile live
outside the package; this subpackage only owns what farmtools itself does with their template.
It may import :mod:`farmtools.config` and nothing from the stages.
"""
