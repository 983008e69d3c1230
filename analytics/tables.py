"""The table names analytics' SQL reads, taken once from the models (no name is spelled twice)."""

from analytics.models import TagHour, TagSlice
from engagement.models import (
    Comment,
    CommentLike,
    CountedFlip,
    Follow,
    Hashtag,
    Like,
    Play,
    Removal,
    Share,
    Video,
    VideoHashtag,
)
from polls.models import Answer, Sticker, Vote

ANSWER = Answer._meta.db_table
COMMENT = Comment._meta.db_table
COMMENT_LIKE = CommentLike._meta.db_table
FLIP = CountedFlip._meta.db_table
FOLLOW = Follow._meta.db_table
HASHTAG = Hashtag._meta.db_table
LIKE = Like._meta.db_table
PLAY = Play._meta.db_table
REMOVAL = Removal._meta.db_table
SHARE = Share._meta.db_table
STICKER = Sticker._meta.db_table
TAG_HOUR = TagHour._meta.db_table
TAG_SLICE = TagSlice._meta.db_table
VIDEO = Video._meta.db_table
VIDEO_HASHTAG = VideoHashtag._meta.db_table
VOTE = Vote._meta.db_table
