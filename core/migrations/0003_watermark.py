# The event-log consumers' watermarks (core.eventlog), moved here from rewards.ConsumerCursor
# (rewards 0002 copies its rows) so that every consumer keeps its positions in one table.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_idempotency_answer_only"),
    ]

    operations = [
        migrations.CreateModel(
            name="Watermark",
            fields=[
                ("name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("position", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
