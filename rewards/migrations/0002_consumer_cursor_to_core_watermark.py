# The consumer's positions move to core.Watermark, named by consumer ("likes" becomes
# "rewards:likes"), so that the analytics and integrity consumers can keep their own positions
# over the same tables. A position already there is kept if it is further along (watermarks
# never move back). Reversing copies them back and removes them from core.Watermark.

from django.db import migrations

FORWARD = """
INSERT INTO core_watermark (name, position, updated_at)
SELECT 'rewards:' || name, position, updated_at FROM rewards_consumercursor
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
    WHERE core_watermark.position < EXCLUDED.position
"""

BACKWARD = [
    """
    INSERT INTO rewards_consumercursor (name, position, updated_at)
    SELECT substr(name, length('rewards:') + 1), position, updated_at FROM core_watermark
    WHERE starts_with(name, 'rewards:')
    """,
    "DELETE FROM core_watermark WHERE starts_with(name, 'rewards:')",
]


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_watermark"),
        ("rewards", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, reverse_sql=BACKWARD),
        migrations.DeleteModel(name="ConsumerCursor"),
    ]
