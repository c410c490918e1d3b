from django.db import models


class Member(models.Model):
    email = models.EmailField(unique=True)
    plan = models.CharField(max_length=10)
