"""pgtq's schema (through pgtq's own migrations, on this database) and the members table."""

from django.db import migrations, models

from pgtq.migrate import upgrade
from welcome.dsn import dsn_of


def install_pgtq(apps, schema_editor):
    """pgtq migrate on the database Django migrates (its test database too)."""
    upgrade(dsn_of(schema_editor.connection))


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []  # noqa: RUF012 (Django reads these class attributes)
    operations = [  # noqa: RUF012
        migrations.RunPython(install_pgtq, migrations.RunPython.noop),
        migrations.CreateModel(
            name="Member",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("email", models.EmailField(max_length=254, unique=True)),
                ("plan", models.CharField(max_length=10)),
            ],
        ),
    ]
