"""Problems of surveys, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Unprocessable


class SurveyNotFound(NotFound):
    slug, title = "survey-not-found", "No such survey"


class SurveyClosed(Conflict):
    slug, title = "survey-closed", "The survey is not open for answers now"


class SurveyAlreadyAnswered(Conflict):
    slug, title = "survey-already-answered", "You have already answered this survey"


class InvalidSurveyWindow(Unprocessable):
    slug, title = "invalid-survey-window", "A survey closes after it opens"


class AnswerNotFound(NotFound):
    slug, title = "survey-answer-not-found", "You have not answered this survey"
