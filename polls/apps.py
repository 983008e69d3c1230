from django.apps import AppConfig


class PollsConfig(AppConfig):
    name = "polls"
    verbose_name = "Stickers: votes, endings, quizzes, unlocks, comment picks"
