# Idempotency records are written once, with the answer, at the end of the request (no
# in-progress claims any more): claims left over from before are dropped (they only blocked
# their key), then the state columns go and response_status is required. The user column loses
# its own index (the unique (user, key) constraint leads with it).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(
            "DELETE FROM core_idempotencyrecord WHERE response_status IS NULL",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveField(
            model_name="idempotencyrecord",
            name="completed_at",
        ),
        migrations.RemoveField(
            model_name="idempotencyrecord",
            name="state",
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="response_status",
            field=models.PositiveSmallIntegerField(),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
