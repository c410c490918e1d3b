from django.urls import path

from welcome.views import signup

urlpatterns = [path("signup", signup)]
