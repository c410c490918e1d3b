#!/usr/bin/env python
"""Django's command line for the example: PGTQ_DSN="dbname=app" python manage.py migrate|runserver|test"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "welcome.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
