import factory
from factory.django import DjangoModelFactory

from engagement.models import Comment, User, Video


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda user: user.username.title())
    password = factory.PostGenerationMethodCall("set_password", "a-good-password-1")

    @factory.post_generation
    def _save(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.save()


class VideoFactory(DjangoModelFactory):
    class Meta:
        model = Video

    creator = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Video {n}")
    duration_ms = 30_000


class CommentFactory(DjangoModelFactory):
    class Meta:
        model = Comment

    user = factory.SubFactory(UserFactory)
    video = factory.SubFactory(VideoFactory)
    text = factory.Sequence(lambda n: f"Comment {n}")
